export * from '../../src/fs/testing/ntfs-images.js';
